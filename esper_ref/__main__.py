from esper_ref.cli import main

main()
