"""Runners: measure one model file on one device with one runtime (see ``registry``)."""
