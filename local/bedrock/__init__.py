"""A faithful local double of the Amazon Bedrock runtime's Converse operation
(`POST /model/{modelId}/converse`, restJson1), for the tests and `make run`.

Start it in-process with `BedrockDouble` (a context manager) and point the product's
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` setting at `double.base_url`: boto3 signs and sends the same
request it sends to `bedrock-runtime.{region}.amazonaws.com`, and parses the same answer.
"""

from local.bedrock.double import BedrockDouble, Fault

__all__ = ["BedrockDouble", "Fault"]
