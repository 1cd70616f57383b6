from oneoff_cli.main import main

main()
