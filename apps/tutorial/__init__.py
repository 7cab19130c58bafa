"""The tutorial app: find every nonce whose hash has enough leading zero bits.

The template to copy when writing an app: it uses only the public API of
golem_task_api, keeps all task state on disk, and verifies results without
trusting the provider.
"""

APP_NAME = "golem-task-api/tutorial"
APP_VERSION = "0.25.0"
