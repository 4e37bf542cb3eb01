# End-to-end study on a tiny random pair under MPI (about a minute on 2 cores).
sf_add_script_test(e2e_tiny_run ${CMAKE_CURRENT_LIST_DIR}/run_tiny.sh e2e-tiny)
set_tests_properties(e2e_tiny_run PROPERTIES LABELS e2e TIMEOUT 600)

# evaluate: SIGKILL of one rank, rerun, results identical to an uninterrupted run.
sf_add_script_test(e2e_evaluate_resume ${CMAKE_CURRENT_LIST_DIR}/eval_resume.sh e2e-eval-resume)
set_tests_properties(e2e_evaluate_resume PROPERTIES LABELS e2e PROCESSORS 2 TIMEOUT 600)

# Injected ENOSPC/EIO at writes, fsyncs and renames of extract, evaluate and judge outputs: one error
# line, only whole files under final names, identical datasets after a clean rerun.
sf_add_script_test(e2e_fault_injection ${CMAKE_CURRENT_LIST_DIR}/fault_injection.sh e2e-fault-injection)
set_tests_properties(e2e_fault_injection PROPERTIES LABELS e2e TIMEOUT 900)

# The run-folder lock: a second job is refused naming the holder; a dead holder's lock is taken over.
sf_add_script_test(e2e_run_lock ${CMAKE_CURRENT_LIST_DIR}/run_lock.sh e2e-run-lock)
set_tests_properties(e2e_run_lock PROPERTIES LABELS e2e PROCESSORS 2 TIMEOUT 600)

# SIGKILL of one rank at seeded points of every stage, three times each: identical results after resuming.
sf_add_script_test(e2e_kill_resume ${CMAKE_CURRENT_LIST_DIR}/kill_resume.sh e2e-kill-resume)
set_tests_properties(e2e_kill_resume PROPERTIES LABELS e2e PROCESSORS 2 TIMEOUT 1500)

# Tensor parallelism: extract and evaluate with parallel.tensor = 2 on 2 ranks give the datasets of
# parallel.tensor = 1 (h5dump; float datasets within 1e-4, h5diff).
sf_add_script_test(e2e_tensor_parallel ${CMAKE_CURRENT_LIST_DIR}/tensor_parallel.sh e2e-tensor-parallel)
set_tests_properties(e2e_tensor_parallel PROPERTIES LABELS "e2e;mpi" PROCESSORS 2 TIMEOUT 900)
