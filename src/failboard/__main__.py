from failboard.cli import main

main()
