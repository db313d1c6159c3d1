from lpq.cli.app import main

main()
