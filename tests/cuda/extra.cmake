# test_cuda's tests carry the label `cuda` (their folder); each skips with "skipped: no GPU" where
# torch sees no GPU.
# Collectives on CUDA tensors across two ranks, each on its own GPU (NCCL); skipped with fewer GPUs.
sf_add_mpi_test(cuda_collectives_np2 test_cuda 2 cuda Cuda.CollectivesOnEachRanksGpu)
# The tiny study end to end on `device: cuda` (extract, train-head with every head kind, evaluate
# with generated and scored tasks, reduce); exit code 77 = skipped: no GPU.
sf_add_script_test(cuda_tiny_study ${CMAKE_CURRENT_LIST_DIR}/tiny_study.sh cuda-tiny)
set_tests_properties(cuda_tiny_study PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 900)
