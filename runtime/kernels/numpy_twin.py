"""The NumPy twin of the C kernel: same functions, same results, no compiler."""
name = "numpy"
