#pragma once
// Cooperative stopping: SIGTERM and SIGUSR1 (Slurm's pre-emption warning) set a flag that long
// stages check between work units; they then throw sf::Interrupted after keeping what is done.
namespace sf {

// Installs the handlers (idempotent).
void install_stop_handlers();
// True once SIGTERM or SIGUSR1 was received.
bool stop_requested();

}  // namespace sf
