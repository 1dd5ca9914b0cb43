DROP TABLE permission_policy;
