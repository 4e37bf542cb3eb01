# The dist tests again as two and four MPI ranks (sharding, skip list, tensor groups and collectives
# across processes).
foreach(np 2 4)
  sf_add_mpi_test(dist_mpi_np${np} test_dist ${np} dist)
endforeach()
