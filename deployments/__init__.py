"""How dbops is run: deployment definitions for Prefect, and the ``dbops`` command line beside them."""
