"""Deployment: the CloudFormation/SAM stack (`make package`) and one-off admin commands.

Dev-time only: nothing here is packaged into the Lambda zip.
"""
