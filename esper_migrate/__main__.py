from esper_migrate.cli import main

main()
