# Independent reference of the farm tuple hash (sys/table/src/hash.rs).
# Prints the known-answer vectors pinned in the Rust tests: python3 docs/hash_reference.py
M=(1<<64)-1
def fmix(x):
    x^=x>>33; x=(x*0xff51afd7ed558ccd)&M; x^=x>>33; x=(x*0xc4ceb9fe1a85ec53)&M; return x^(x>>33)
def sm(s):
    s=(s+0x9e3779b97f4a7c15)&M; z=s; z=((z^(z>>30))*0xbf58476d1ce4e5b9)&M; z=((z^(z>>27))*0x94d049bb133111eb)&M; return s, z^(z>>31)
s,k0=sm(0x0123456789abcdef); s,k1=sm(s)
def pw(p,onport): return ((1<<48)|p) if onport else 0
def h4(ip,p,onport):
    a=int.from_bytes(bytes(ip),'big'); h=fmix(k0^(4<<56)^(a<<16)^pw(p,onport)); return fmix(h^k1)
def rotl(x,r): return ((x<<r)|(x>>(64-r)))&M
import ipaddress
def h6(ip,p,onport):
    v=int(ipaddress.IPv6Address(ip)); hi=v>>64; lo=v&M
    h=fmix(k0^(6<<56)^pw(p,onport)^hi); h=fmix(h^lo^k1); return fmix(h^rotl(k0,29))
for a in [([198,18,0,1],0,0),([198,18,0,2],0,0),([10,0,0,1],0,0),([198,18,0,1],40000,1),([198,18,0,1],40001,1)]: print(hex(h4(*a)))
for a in [("2001:db8::1",0,0),("2001:db8::2",0,0),("2001:db8::1",443,1)]: print(hex(h6(*a)))
