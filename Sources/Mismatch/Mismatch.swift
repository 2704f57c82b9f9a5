// The mismatch statistics of SCIENCE.md §4: pure functions of two engines' log-probabilities.
