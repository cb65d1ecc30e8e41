from skinbench.cli import main

raise SystemExit(main())
