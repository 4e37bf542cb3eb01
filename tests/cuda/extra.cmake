# test_cuda's tests carry the label `cuda` (their folder); each skips with "skipped: no GPU" where
# torch sees no GPU.
# The tiny study end to end on `device: cuda` (extract, train-head with every head kind, evaluate
# with generated and scored tasks, reduce); exit code 77 = skipped: no GPU.
add_test(NAME cuda_tiny_study
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/tiny_study.sh $<TARGET_FILE:superficial> ${CMAKE_SOURCE_DIR}
                 ${SF_SHARED_DIR}/data ${CMAKE_BINARY_DIR}/cuda-tiny)
set_tests_properties(cuda_tiny_study PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 900)
