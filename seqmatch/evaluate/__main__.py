from seqmatch.evaluate.cli import main

main()
