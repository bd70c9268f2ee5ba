"""Learned models shared by the stages: scikit-learn regressors persisted without pickles."""
