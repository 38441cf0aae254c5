from imgbatch.cli import main

main(prog_name="imgbatch")
