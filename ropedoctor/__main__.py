from ropedoctor.cli import main

main()
