# The real-model tier (label `real`): SmolLM2-135M-Instruct Q4_1 from its GGUF file, fetched by
# scripts/fetch-models.sh into $SF_MODELS_CACHE (outside the repository) as the setup of every test
# here, so a fresh clone's ctest downloads it (~93 MB, once).
add_test(NAME real_fetch COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fetch-models.sh)
set_tests_properties(real_fetch PROPERTIES LABELS real FIXTURES_SETUP real_models TIMEOUT 900)

# The task of the issue: an answer naming Paris, straight from the GGUF file.
add_test(NAME real_generate_paris
         COMMAND bash -c "exec \"$0\" generate --model \"$(bash \"$1\" | tail -n 1)\" --template chatml --prompt 'What is the capital of France?'"
                 $<TARGET_FILE:superficial> ${CMAKE_SOURCE_DIR}/scripts/fetch-models.sh)
set_tests_properties(real_generate_paris PROPERTIES LABELS real FIXTURES_REQUIRED real_models TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "Paris")

# The real model's log-probs and greedy answers again with the hand-written kernels held to AVX2
# (SUPERFICIAL_MAX_ISA), as an AVX2-only CPU runs them.
add_test(NAME real_max_isa_avx2 COMMAND test_real --gtest_filter=Real.LogprobsMatchTransformers:Real.GreedyAnswersMatchTransformers)
set_tests_properties(real_max_isa_avx2 PROPERTIES LABELS real FIXTURES_REQUIRED real_models TIMEOUT 300
                     ENVIRONMENT SUPERFICIAL_MAX_ISA=avx2)
