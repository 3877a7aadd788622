from pulseplan.cli import main

main()
