from postlens.cli import main

main()
