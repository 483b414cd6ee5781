from ticker_service.cli import main

raise SystemExit(main())
