# Tensor parallelism: the DISABLED_Tp* suites of test_model as two MPI ranks (T = 2 against the
# whole model on every golden fixture; vocabulary-split operations).
find_program(SF_MPIEXEC NAMES mpirun mpiexec)
if(SF_MPIEXEC)
  add_test(NAME model_tp_mpi_np2
           COMMAND ${SF_MPIEXEC} --oversubscribe -np 2 $<TARGET_FILE:test_model> --gtest_also_run_disabled_tests
                   --gtest_filter=*DISABLED_Tp*)
  set_tests_properties(model_tp_mpi_np2 PROPERTIES LABELS "model;mpi" PROCESSORS 2 TIMEOUT 300
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
endif()
