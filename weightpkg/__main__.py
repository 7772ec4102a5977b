from weightpkg.cli import main

main()
