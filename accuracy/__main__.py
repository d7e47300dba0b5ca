from accuracy.cli import entry

entry()
