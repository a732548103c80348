"""Data access: one repository class per table, the only code that knows item layouts."""
