"""Stand-in for dbt's ``exceptions`` context object, for sqlfluff's jinja templater only."""


def raise_compiler_error(message: str = "") -> str:
    return ""


def warn(message: str = "") -> str:
    return ""
