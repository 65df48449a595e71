from latkit.cli import _entry

_entry()
