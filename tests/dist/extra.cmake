# The dist tests again as two and four MPI ranks (sharding, skip list, tensor groups and collectives
# across processes).
find_program(SF_MPIEXEC NAMES mpirun mpiexec)
if(SF_MPIEXEC)
  foreach(np 2 4)
    add_test(NAME dist_mpi_np${np}
             COMMAND ${SF_MPIEXEC} --oversubscribe -np ${np} $<TARGET_FILE:test_dist>)
    set_tests_properties(dist_mpi_np${np} PROPERTIES LABELS "dist;mpi" PROCESSORS 2 TIMEOUT 180
                         ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")
  endforeach()
endif()
