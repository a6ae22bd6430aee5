"""Alibaba Cloud: credentials, the SDK client, typed ECS/VPC calls, retries, rate limits, errors.

Importing this package is cheap: the aliyun SDK, alibabacloud-credentials and tenacity are
imported only by the functions that use them. Start with `terwayctl.cloud.session.build_client`.
"""
