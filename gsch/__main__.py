from gsch.cli import main

raise SystemExit(main())
