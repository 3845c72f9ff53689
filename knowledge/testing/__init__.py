"""Fakes and fixture builders other apps' tests and bench/ can reuse."""
