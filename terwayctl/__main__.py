from terwayctl.cli.app import main

main()
