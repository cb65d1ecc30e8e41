"""Approaches: small scikit-learn style estimators that take image paths."""
