import Lab

configureAllocator()
Plab.main()
