from accelctl.cli import main

main()
