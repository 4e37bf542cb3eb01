# The dist tests again as two MPI ranks (sharding, skip list and collectives across processes).
find_program(SF_MPIEXEC NAMES mpirun mpiexec)
if(SF_MPIEXEC)
  add_test(NAME dist_mpi_np2
           COMMAND ${SF_MPIEXEC} --oversubscribe -np 2 $<TARGET_FILE:test_dist>)
  set_tests_properties(dist_mpi_np2 PROPERTIES LABELS "dist;mpi" TIMEOUT 120
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
endif()
