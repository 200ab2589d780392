from aas_core.cli import main

main()
