# Tensor parallelism: the DISABLED_Tp* suites of test_model as two MPI ranks (T = 2 against the
# whole model on every golden fixture; vocabulary-split operations).
sf_add_mpi_test(model_tp_mpi_np2 test_model 2 model *DISABLED_Tp*)
