"""The whole stack on one machine: moto in server mode for S3/SQS/DynamoDB, the
Chalice app served over HTTP, and pollers that deliver S3 -> SQS messages to the
same handler function Lambda runs. `make run` starts it; tests start it too."""
