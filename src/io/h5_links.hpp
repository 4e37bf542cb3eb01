#pragma once
// The objects of an HDF5 file as libhdf5 lists them, for the checks that walk a whole file before it
// is read (h5_vlen_check.hpp, h5_probe.hpp).
#include <hdf5.h>

#include <filesystem>
#include <string>
#include <vector>

namespace sf::h5 {

// Names (from the root, without the leading '/') of every object reached by hard links from the
// root of `file` (whose path is `path`), in libhdf5's visiting order; soft and external links are not
// followed. FormatError when libhdf5 cannot list them all: the checks that walk a file by this list
// must not pass over objects a reader could still open by name (h5 fuzz finding).
std::vector<std::string> hard_link_names(hid_t file, const std::filesystem::path& path);

}  // namespace sf::h5
