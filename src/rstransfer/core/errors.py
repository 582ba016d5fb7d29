"""Errors that the CLI reports as one line (``rstransfer: error: ...``) with a non-zero exit."""


class RSTransferError(Exception):
    """Base for every user-facing error: bad input, bad config, missing data."""


class ConfigError(RSTransferError):
    """A config key is missing, mistyped or has an invalid value. The message names the key."""


class DatasetNotFoundError(RSTransferError, FileNotFoundError):
    """A dataset file is missing. The message names the dataset, the path searched,
    the expected file/variable and the config key to change."""


class DataFormatError(RSTransferError):
    """A data file exists but cannot be used (corrupt, wrong shape, NaN, unknown label...)."""
