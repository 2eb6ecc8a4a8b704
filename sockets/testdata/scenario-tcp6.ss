LISTEN    0      4096   [fd00::1]:8443       [::]:*    
	 skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)  
ESTAB     0      0      [fd00::1]:8443  [fd00::1]:39710
	 skmem:(r0,rb131072,t0,tb3939840,f0,w0,o0,bl0,d0)
ESTAB     0      0      [fd00::1]:8443  [fd00::1]:39724
	 skmem:(r0,rb131072,t0,tb3939840,f0,w0,o0,bl0,d0)
TIME-WAIT 0      0      [fd00::1]:39686 [fd00::1]:8443 
	                                                 
TIME-WAIT 0      0      [fd00::1]:39696 [fd00::1]:8443 
	                                                 
TIME-WAIT 0      0      [fd00::1]:39702 [fd00::1]:8443 
	                                                 
ESTAB     0      0      [fd00::1]:39710 [fd00::1]:8443 
	 skmem:(r0,rb131072,t0,tb3939840,f0,w0,o0,bl0,d0)
ESTAB     0      0      [fd00::1]:39724 [fd00::1]:8443 
	 skmem:(r0,rb131072,t0,tb3939840,f0,w0,o0,bl0,d0)
