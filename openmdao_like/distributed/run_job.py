"""``python -m openmdao_like.distributed.run_job DIR``: run the job a wrapper wrote in DIR."""

import sys

from .jobfiles import run_job

if __name__ == '__main__':
    sys.exit(run_job(sys.argv[1]))
