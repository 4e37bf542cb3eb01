# Data-parallel head training: 1 and 2 MPI ranks must train the same heads (up to float reduction
# order). The test itself starts mpirun twice on a synthetic study.
add_test(NAME heads_mpi_one_vs_two_ranks
         COMMAND test_heads --gtest_also_run_disabled_tests --gtest_filter=TrainHeadMpi.DISABLED_OneAndTwoRanksTrainTheSameHeads)
set_tests_properties(heads_mpi_one_vs_two_ranks PROPERTIES LABELS "heads;mpi" PROCESSORS 2 TIMEOUT 300
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")

# Head training memory is bounded by heads.max_memory_mb, not by the dataset (bench train-head).
add_test(NAME heads_memory_bounded
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/memory_bound.sh $<TARGET_FILE:superficial> ${CMAKE_BINARY_DIR}/heads-memory)
set_tests_properties(heads_memory_bounded PROPERTIES LABELS "heads" TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")

# Heads on vocabulary-split logits (tensor parallelism) as two MPI ranks.
sf_add_mpi_test(heads_tp_mpi_np2 test_heads 2 heads *DISABLED_TpHeads*)
