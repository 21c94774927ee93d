/* placeholder until the rpc issue lands main */
int
main(void)
{
    return 0;
}
