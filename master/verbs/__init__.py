"""What every runner shares: argument binding, errors as data, calls into Salt."""
