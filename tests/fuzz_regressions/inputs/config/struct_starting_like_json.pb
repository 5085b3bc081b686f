
{
api_keyso2m
k*i

namexxxxxxxxxxxxxxx
L
sha256B@8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a