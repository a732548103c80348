"""Public AWS list prices used by the benchmark — the one place they are written.

Region us-east-1, on-demand, no free tier, as published on the AWS pricing pages
(aws.amazon.com/<service>/pricing) and summarised in ``facts.md`` of this project;
noted 2026-11-25. Prices change: update this file, the figures follow.
"""

from __future__ import annotations

PRICES_DATE = "2026-11-25"
PRICES_SOURCE = "AWS public list prices, us-east-1, on-demand (aws.amazon.com/<service>/pricing)"

#: API Gateway HTTP API: per request (first 300M/month; billed per 512 KB chunk).
HTTP_API_PER_REQUEST = 1.00 / 1_000_000
#: Lambda: per request, and per GB-second on arm64 (Graviton).
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_S_ARM64 = 0.0000133334
#: Lambda bills duration rounded up to the millisecond.
LAMBDA_BILLING_GRANULARITY_MS = 1
#: EventBridge custom events: per event published (each 64 KB chunk of an entry is one event).
EVENTBRIDGE_PER_EVENT = 1.00 / 1_000_000
#: SQS standard queues: per request (each 64 KB chunk of a request is one request).
SQS_PER_REQUEST = 0.40 / 1_000_000
#: DynamoDB on-demand: per write request unit and per read request unit.
DYNAMODB_PER_WRU = 0.625 / 1_000_000
DYNAMODB_PER_RRU = 0.125 / 1_000_000
#: Secrets Manager: per 10,000 API calls (plus $0.40 per secret-month, a fixed cost).
SECRETS_MANAGER_PER_CALL = 0.05 / 10_000
SECRETS_MANAGER_PER_SECRET_MONTH = 0.40
#: S3 standard: PUT/POST and GET requests.
S3_PER_PUT = 5.00 / 1_000_000
S3_PER_GET = 0.40 / 1_000_000
#: CloudWatch Logs: ingestion per GB (standard class).
CLOUDWATCH_LOGS_PER_GB = 0.50
#: SES receiving: per 1,000 mails and per 1,000 incoming 256 KB chunks.
SES_RECEIVE_PER_MAIL = 0.10 / 1000
SES_RECEIVE_PER_CHUNK = 0.09 / 1000

#: What a hosted product charges, for comparison (widely quoted): Amazon Connect chat per message.
CONNECT_CHAT_PER_MESSAGE = 0.004

# Amazon S3 Standard: GET (the routing function's conditional GET of the knowledge index).
S3_GET_PER_REQUEST = 0.0004 / 1000
# Amazon Bedrock, on-demand, the assistant's default model (anthropic.claude-3-haiku-20240307-v1:0,
# shared/services/assistant/bedrock.py DEFAULT_MODEL_ID): USD per 1,000 input / output tokens.
BEDROCK_DEFAULT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
BEDROCK_INPUT_PER_1K = 0.00025
BEDROCK_OUTPUT_PER_1K = 0.00125
#: Characters per token for the prompt sizes the bench counts (Anthropic's rule of thumb: ~3.5
#: characters of English per token; 3.5 rounds the token count up, so the cost is not understated).
CHARS_PER_TOKEN = 3.5
