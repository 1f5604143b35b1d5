from ropedoctor.entry import main

main()
