# Two commands do all set-up on a fresh machine:
#   make run    install what is needed, then run the service (prints its URL and a token)
#   make test   install everything, start PostgreSQL and Redis, run the whole test suite
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup

run:
	@scripts/setup.sh
	.venv/bin/gapless serve --host $(HOST) --port $(PORT)

test:
	@scripts/setup.sh --test
	@scripts/services.sh
	scripts/check.sh
