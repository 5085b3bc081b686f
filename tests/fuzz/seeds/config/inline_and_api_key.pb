
„
	providersö2ó
ð*í

name
fuzz-idp
#
issuerhttps://idp.example.com
,
	audiences2
	gateway
claude-desktop
Ö
jwksÍ*Ê
Ç
inline¼¹{"keys": [{"kty": "RSA", "kid": "rsa", "use": "sig", "n": "ykwJ77T3TPwE9fzQneWzfMrbtcCCqpD9c9mS653fkMpUntN18dUm28i9d5L7Jc96HvGhE_-roZVP00kM17nRClOFwflbBTK62U_AQ9AfqJHQrgeGOTboI276umVgDM1we-HEPD3WSqf9Br3fI51l6oBsdFxd52lCBrllH_csBAEXQwa-GB2QI4Rkt5PBg6QJCuTPzODgijo3J98J5f5yjKQ2VWyDE6OZTcecvcYm97KtcrigRiUv77DBBWr__1YQbE8cknUaTGPAJJe_7FuDO4upl_sojWE8N1ZZAFK1hfmfwC0MV8Fi2IluaFgVTSqSzxdo1EZdfqAObxqLP3O80Q", "e": "AQAB"}, {"kty": "EC", "kid": "p256", "use": "sig", "crv": "P-256", "alg": "ES256", "x": "wN7owFCMNAaLqtjQyLihuai69R7upGLxtTad1qSW6lU", "y": "kbzdfaIQJF9AHiYZPCnnBnJIWuWoX0C-fJYiEcRB9oU"}, {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "bgETVb7lqIxtBM6f7qMLuxK59fUIwovmybWooOLzdac"}]}
+
required_claims*

tenant
2
acme
ˆ
api_keys|2z
x*v

nameci-bot
L
sha256B@a332b740df5e453d7c0c6d1263b9595a74cd63b66105b1c42dabf8ca90463ebe

groups
2
bots