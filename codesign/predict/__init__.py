"""The accuracy predictor: encoding, regressors, training and fidelity."""
